"""Inside the model: what its layers hold and do (the layer lens; patching, concepts, features)."""
