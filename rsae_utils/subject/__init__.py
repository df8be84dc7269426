"""Text -> model -> variant: what the SAEs read.

``corpus`` (text sources), ``windows`` (text -> token windows), ``models`` (names -> HookedTransformer), ``gguf``
(the one GGUF conversion of the offline model), ``hub`` (is the hub reachable), ``variants`` (the registry of the
five variants: names, order, labels, descriptions), ``rerandomize`` (how each variant is made).
"""
