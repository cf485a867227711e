"""The interleaving explorer, counterexample traces and the command line."""
