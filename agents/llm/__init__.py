"""The LLM path: the chat seam, the OpenAI-compatible client and its one factory, LLM classify and write."""
