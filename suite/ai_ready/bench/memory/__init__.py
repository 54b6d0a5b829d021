"""Memory bandwidth: STREAM-class kernels, copies and transfers (GPU through CuPy, CPU through torch)."""
