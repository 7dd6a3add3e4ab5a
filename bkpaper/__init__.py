"""bkpaper: the paper's tooling — every figure and table of ``paper/`` generated from real runs.

* :mod:`bkpaper.framework` — the figure registry, sanity assertions, outputs (PDF, PNG, JSON
  sidecar, LaTeX snippet, ``numbers.tex``) and the runner :func:`~bkpaper.framework.generate`;
* the figure modules, one per family: :mod:`bkpaper.resolvent_figs` (figures 1–2),
  :mod:`bkpaper.scattering_figs` (3–4), :mod:`bkpaper.primes_figs` (5) and
  :mod:`bkpaper.model_figs` (6–7, from the language model's runs), :mod:`bkpaper.continuum_figs`
  (8), :mod:`bkpaper.act_figs` (9, early exit);
* :mod:`bkpaper.long_context_figs` (10, length extrapolation; skipped until its results
  file exists); :mod:`bkpaper.spectral_figs` (11, Clark measures and the half-line m-function);
  :mod:`bkpaper.resonance_figs` (12, lattice and line resonances, certified);
* :mod:`bkpaper.tables` — the certificate tables (``python -m bkpaper.tables``);
* :mod:`bkpaper.cli` — the ``bk figures`` command.

``bkpaper`` uses :mod:`bkmath` and :mod:`bkmodel`; neither of them imports it. Importing the
package imports the figure modules (they only import the standard library at module level), so
the registry :data:`bkpaper.framework.FIGURES` is complete whichever module is imported first.
"""

from __future__ import annotations

from bkpaper import (  # noqa: F401
    act_figs,
    continuum_figs,
    long_context_figs,
    model_figs,
    primes_figs,
    resolvent_figs,
    resonance_figs,
    scattering_figs,
    spectral_figs,
)
