"""Files in and out: everything that touches disk without knowing about models.

Owns atomic writes (:mod:`.atomic`), the one PNG encoder (:mod:`.images`), the manifest and its
file name (:mod:`.manifest`), the one safe output folder (:mod:`.folder`: refuse a foreign
folder, write under temporary names, publish in batches), the one progress line
(:mod:`.progress`), and the detection export formats (:mod:`.detection`: YOLO, Pascal VOC, CSV).
It imports only :mod:`vae_keras.errors` from the rest of ``vae_keras`` and never imports
TensorFlow, so the importers in ``data_prep`` and the CLI's ``--help`` stay fast. Every other
stage may import it.
"""
