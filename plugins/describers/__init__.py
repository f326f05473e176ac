"""Built-in describers plugins, registered through this project's entry points."""
