"""`triage onboard`: a working helpdesk configuration (KB, training tickets, report) from one export file."""
