"""Transaction signers, one module per chain family."""
