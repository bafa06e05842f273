"""The HTTP service: an export behind `POST /v1/verify`, `/v1/embed`, `/v1/identify`, gallery
enrolment, health, Prometheus metrics and a small offline web page (`python -m siamese.serve`).

Lives here: `engine` (an export opened once, MXNet or onnxruntime, its networks run on
batches padded to a few static sizes), `batcher` (the one inference thread that owns the model,
a bounded queue and dynamic batching), `inputs` (request bodies to decoded images, with every
limit: size, pixels, formats), `gallery` (identify, enroll and remove against a gallery file,
written atomically as `siamese.gallery add/remove` writes it), `metrics` (Prometheus text),
`state` (what a running service holds; the one way a request reaches the model), `plumbing`
(JSON errors, plain endpoints, the body limit and request metrics), `app` (the FastAPI
application and its routes; uvicorn and signals are siamese.commands.serve), `static/` (the
web page: HTML, JS, CSS, shipped as package data).
May import: config, formats, data (decoding), scoring, identification. FastAPI, uvicorn and
python-multipart are the optional extra `serve`.
"""
