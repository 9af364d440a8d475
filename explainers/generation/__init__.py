"""Generated text explained token by token, and long prompts explained sentences first."""
