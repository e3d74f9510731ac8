"""Files in and out: everything that touches disk without knowing about models.

Owns atomic writes (:mod:`.atomic`), the prepared-data manifest (:mod:`.manifest`), and the
detection export formats with their safe export folder (:mod:`.detection`: YOLO, Pascal VOC,
CSV). It imports nothing from the rest of ``vae_keras`` and never imports TensorFlow, so the
importers in ``data_prep`` and the CLI's ``--help`` stay fast. Every other stage may import it.
"""
