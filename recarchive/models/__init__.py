"""Neural models. They know the coding core's exact layers and tables, never archives."""
