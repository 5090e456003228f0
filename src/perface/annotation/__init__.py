"""Human triplet judgments: build SimCelebA-style triplets, collect votes in a web app, check the
annotators and export a release that ``perface train`` reads (issue 21).

Modules: :mod:`~.db` (tables, engine), :mod:`~.project` (a project folder and its settings),
:mod:`~.build` (triplets from two folders of faces), :mod:`~.assign` (who answers what next),
:mod:`~.quality` (catch trials, agreement), :mod:`~.export` (the SimCelebA layout),
:mod:`~.security` (tokens, CSRF, rate limits) and :mod:`~.app` (the FastAPI app).
"""
