"""The daily stand-up digest: builder, SLA, themes, rendering, the job, its scheduler and webhook."""
