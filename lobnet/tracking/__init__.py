"""Everything MLflow: runs, tags and experiments (:mod:`.runs`), a fold as a logged pyfunc model
(:mod:`.model`) and its code entry (:mod:`.entry`)."""
