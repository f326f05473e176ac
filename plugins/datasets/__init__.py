"""Built-in datasets plugins, registered through this project's entry points."""
