"""Differentiate a legacy executable: an input deck in, a results file out, no source code needed.

The "legacy" program here is a small heat-exchanger code written to a temp dir. It reads a
Fortran-style namelist deck, refuses a non-positive wall thickness (exit code 1), and writes
``results.out`` with Fortran ``D`` exponents. The ``subprocess`` adapter fills the deck for every
perturbed point (values written with ``repr``: they reach the program bit for bit), runs the
program in a fresh work dir (never through a shell), parses the numbers back and deletes the
work dir; a failed run keeps its work dir and names it. Run from a terminal, the example
leaves that kept dir for you to look into (and says where); run by a script (stdout not a
terminal) or with --cleanup it removes it at the end, and says so. Everything else it made is
removed in any case.

Run:  python examples/legacy_executable.py            (a few seconds)
      python examples/legacy_executable.py --keep     (leave the kept dir, even from a script)
      python examples/legacy_executable.py --cleanup  (remove the kept dir as well)
The same from the command line:
  simdiff jacobian subprocess --set command='["python3", "/path/to/heatx.py", "deck.nml"]' \\
      --set inputs='["k", "L"]' --set files='{"deck.nml": "..."}' --at k=45,L=0.02
"""

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import simdiff as sd

LEGACY = r'''
import re, sys
deck = open(sys.argv[1]).read()
k = float(re.search(r"conductivity\s*=\s*([^,\s]+)", deck).group(1))   # W/(m K)
L = float(re.search(r"thickness\s*=\s*([^,\s/]+)", deck).group(1))     # m
if L <= 0:
    sys.exit("HEATX-E-017: wall thickness must be positive")
area, t_hot, t_cold, mcp = 2.0, 80.0, 20.0, 50.0
q = k * area * (t_hot - t_cold) / L                                  # Fourier's law, W
t_out = t_hot - q / (mcp * 1000.0)
with open("results.out", "w") as out:
    out.write(" HEATX 4.2  (c) 1987\n")
    out.write((" HEAT FLOW   Q     = %24.16E W\n" % q).replace("E", "D"))
    out.write((" OUTLET TEMP T_OUT = %24.16E C\n" % t_out).replace("E", "D"))
'''

DECK = """&heatx
  conductivity = {k},
  thickness = {L} /
"""


def exact_jacobian(k, L):
    dq = np.array([120.0 / L, -120.0 * k / L**2])  # q = 120 k / L
    return np.vstack([dq, -dq / 50_000.0])


def main(cleanup: bool = False) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="simdiff-legacy-"))
    program = tmp / "heatx.py"
    program.write_text(LEGACY)

    sim = sd.load(
        "subprocess",
        command=[sys.executable, str(program), "deck.nml"],
        inputs=["k", "L"],
        files={"deck.nml": DECK},
        outputs=["Q", "T_out"],
        parse={"file": "results.out",
               "regex": [r"Q\s*=\s*(\S+)", r"T_OUT\s*=\s*(\S+)"]},
        timeout=30,
        workdir=tmp / "runs",
    )
    x = np.array([45.0, 0.02])  # steel, 2 cm
    J, info = sd.jacobian(sim, x, n_jobs=2, full_output=True)

    print(f"Jacobian of the legacy program at k={x[0]}, L={x[1]} ({info.nfev} runs):\n")
    print(f"{'':8}" + "".join(f"{'d/d' + n:>26}" for n in sim.inputs))
    for name, row, err in zip(sim.outputs, J, info.error):
        print(f"{name:8}" + "".join(f"{v:>16.10g} ± {e:.1e}" for v, e in zip(row, err)))
    rel = np.abs(J - exact_jacobian(*x)) / np.abs(exact_jacobian(*x))
    print(f"\nlargest relative difference to the analytic Jacobian: {rel.max():.1e}")
    print(f"work dirs left after success: {len(list((tmp / 'runs').iterdir()))}")

    kept = None
    try:
        sim(np.array([45.0, -0.01]))
    except sd.SimulationError as exc:
        kept = Path(exc.workdir)
        print(f"\na failed run raises SimulationError: exit code {exc.returncode}, "
              f"stderr {exc.stderr_tail!r},\n  its work dir kept for inspection: {exc.workdir}")
        print("  holding:", ", ".join(sorted(p.name for p in kept.iterdir())))
    finally:
        # this example's own files go; the kept run stays unless --cleanup (it was kept for you)
        program.unlink()
        if cleanup or kept is None:
            shutil.rmtree(tmp)
            if kept is not None:
                print(f"\nremoved {tmp}, the kept work dir with it (--keep leaves it for you)")
        else:
            print(f"\nthe kept work dir stays: look at {kept}, then remove {tmp}\n"
                  "(python examples/legacy_executable.py --cleanup removes it at once)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(cleanup="--cleanup" in args or ("--keep" not in args and not sys.stdout.isatty()))
