"""The jobs API: large evaluations submitted once, scored in the background, read back later."""
