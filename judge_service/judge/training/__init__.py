"""Training and evaluation of the PolyTone judge: data, features, fitting, metrics."""
