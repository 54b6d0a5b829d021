"""I/O benchmarks: what the file system gives a training job, measured safely inside a scratch folder."""
