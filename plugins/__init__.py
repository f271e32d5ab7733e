"""Built-in plugins. Each is listed as an entry point in the group ``myhibachi.plugins``."""
