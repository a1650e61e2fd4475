"""Answers to chat questions: grounded SOP steps, the LLM answer writer, owners and ownership files."""
