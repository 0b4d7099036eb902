"""The `keypaint` command line: builds `GenerationParams` and calls the `Painter`."""
