"""``lunglesion demo``: a synthetic cohort generated from code, run through the whole pipeline.

* :mod:`pipeline.demo.design`: who the demo patients are, when they were scanned and infused,
  and their true lesion burdens (improving, stable, worsening);
* :mod:`pipeline.demo.generate`: writes the cohort as DICOM series, the cohort CSV and a
  ``truth.csv`` with the exact volumes of every scan;
* :mod:`pipeline.demo.summary`: compares the measured ``scans.csv`` with the truth;
* :mod:`pipeline.demo.run`: generate, run (:func:`pipeline.batch.runner.run_batch`), summarise.

Nothing here needs data from outside the package: the thorax is :mod:`pipeline.synthetic.thorax`.
"""
