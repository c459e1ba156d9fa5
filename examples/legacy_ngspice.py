"""Differentiate a real circuit simulator: ngspice in batch mode, a diode behind a resistor.

The deck is written the way circuit decks are: values with 7 significant digits
(``{R:.6e}``), the source voltage with the default (at most 20 characters). ngspice -b exits
with code 1 after a successful ``.control`` block, hence ``ok_returncodes=[0, 1]``. simdiff
takes its differences between the values ngspice actually read (``sim.quantize``), so the
rounding of the deck does not distort the derivative, and compares the result with the closed
form of the implicit function theorem:

    (V − v)/R = Is·(exp(v/Vt) − 1) + gmin·v   =>   dv/dR = −((V − v)/R²) / G,
    dv/dV = (1/R) / G,   G = 1/R + (I_D + Is)/Vt + gmin   (Vt = kT/q at 27 °C)

Run:  python examples/legacy_ngspice.py        (needs: apt-get install ngspice; about 2 s)
Without ngspice it says so and exits 0.
"""

import shutil
import sys
import tempfile

import numpy as np

import simdiff as sd

DECK = """diode behind a resistor
V1 1 0 DC {V}
R1 1 2 {R:.6e}
D1 2 0 DMOD
.model DMOD D(IS=1e-14 N=1)
.options reltol=1e-9 vntol=1e-12 abstol=1e-15
.control
set numdgt=14
op
print v(2)
.endc
.end
"""


BROKEN = """no node 9
V1 1 0 DC 1
R1 1 0 {R}
.control
op
print v(9)
.endc
.end
"""


def closed_form(v: float, R: float, V: float, Is: float = 1e-14, gmin: float = 1e-12) -> np.ndarray:
    Vt = 1.38064852e-23 * 300.15 / 1.6021766208e-19  # ngspice's constants
    Id = (V - v) / R - gmin * v
    G = 1 / R + (Id + Is) / Vt + gmin
    return np.array([-((V - v) / R**2) / G, (1 / R) / G])


def main() -> int:
    if shutil.which("ngspice") is None:
        print("ngspice is not installed: this example needs it (apt-get install ngspice). Skipped.")
        return 0
    runs = tempfile.mkdtemp(prefix="simdiff-ngspice-")
    try:
        sim = sd.load(
            "subprocess",
            command=["ngspice", "-b", "deck.cir"],
            inputs=["R", "V"],
            outputs=["v2"],
            files={"deck.cir": DECK},
            parse={"regex": r"^v\(2\) = (\S+)"},
            ok_returncodes=[0, 1],  # ngspice -b: 1 after a .control block
            scales=[1e3, 1.0],  # ohms and volts: the typical size of each input
            timeout=30,
            workdir=runs,
        )
        x = np.array([1234.56789, 5.0])
        xq = sim.quantize(x)
        print(f"R = {float(x[0])!r} is written as {DECK.splitlines()[2].split()[-1].format(R=x[0])} "
              f"and read as {float(xq[0])!r}: the derivative is taken there")
        g, info = sd.gradient(sim, x, method="five-point", n_jobs=2, full_output=True)
        v = float(sim(x)[0])
        exact = closed_form(v, *xq)
        print(f"\nnode voltage v(2) = {v:.12f} V   ({info.nfev} ngspice runs)\n")
        print(f"{'':8}{'simdiff':>20}{'closed form':>20}{'rel. diff':>12}")
        for name, a, b in zip(["dv/dR", "dv/dV"], g, exact):
            print(f"{name:8}{a:>20.12e}{b:>20.12e}{abs(a - b) / abs(b):>12.1e}")
        try:  # a broken deck: ngspice explains itself on stdout, simdiff passes it on
            bad = sd.load("subprocess", command=["ngspice", "-b", "deck.cir"], inputs=["R"],
                          files={"deck.cir": BROKEN}, workdir=runs, keep="never",
                          parse={"regex": r"^v\(2\) = (\S+)"}, ok_returncodes=[0, 1], timeout=30)
            bad(np.array([1000.0]))
        except sd.SimulationError as exc:
            print(f"\na deck printing a node that does not exist raises SimulationError "
                  f"(exit code {exc.returncode}):")
            print("  " + "\n  ".join(line[:110] for line in str(exc).splitlines()[:4]))
        return 0
    finally:
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
