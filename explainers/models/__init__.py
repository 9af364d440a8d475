"""Models: loading (built-ins, folders, hub ids), integrity, architecture, the handle, task adapters, text -> words."""
