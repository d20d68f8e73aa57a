"""A Morse pair potential (JAX): the second potential family, with a closed-form Hessian."""
