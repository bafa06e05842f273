"""Identification: enrolled identities, and "which of them is this image, or none?".

Lives here: `search` (nearest-neighbour indexes: exact numpy, FAISS flat / IVF / HNSW),
`retrieval` (Recall@k, MAP@R, rank-1, DIR@FAR, CMC; numpy only), `ranking` (ranking
identities from neighbours, `unknown` at a threshold, open-set calibration on probes),
`enroll` (galleries made with an export: embedding folders, adding, removing), `report`
(eval.py --retrieval / --open-set), `plots` (CMC and DIR-FAR curves).
May import: config, formats, data (folders, decoding), scoring. Never eval, train or export.
"""
