"""Pure array code: no files, no GUI, no printing.

Each module holds small functions of arrays and plain numbers: field of view (:mod:`.fov`), background and
grey morphology (:mod:`.morphology`), noise-adaptive thresholds (:mod:`.threshold`), labelling and measurement
(:mod:`.measure`) and the accept/reject decision for each candidate (:mod:`.classify`).
"""
