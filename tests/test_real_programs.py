"""Real legacy programs through the ``subprocess`` adapter: ngspice, CalculiX (ccx), LAMMPS.

Each test skips with the install line when its program is absent. Every derivative is checked
against a closed form:

* ngspice: a resistor divider, V2 = V·R2/(R1 + R2); a diode behind a resistor, whose node
  voltage solves (V − v)/R = Is·(exp(v/Vt) − 1) + gmin·v, so dv/dR = −((V − v)/R²) /
  (1/R + (I_D + Is)/Vt + gmin) by the implicit function theorem (Vt = kT/q at 27 °C with
  ngspice's constants);
* ccx: a cantilever of B32R beams; a linear static FE displacement is exactly proportional to
  P/E (the stiffness matrix is proportional to E at fixed ν), so dδ/dE = −δ/E and
  dδ/dP = δ/P whatever the mesh, and δ itself is within 2 % of P·L³/(3·E·I);
* LAMMPS: a Lennard-Jones dimer, E(r) = 4ε((σ/r)^12 − (σ/r)^6).

ccx prints 7 significant digits: its derivatives use five-point differences on 2 % steps (the
rounding of the printed values then costs at most 1.5·5e-7/0.02 ≈ 4e-5 relative).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import simdiff as sd


def need(program: str, package: str):
    return pytest.mark.skipif(
        shutil.which(program) is None,
        reason=f"{program} is not installed (apt-get install {package})",
    )


def gradient(sim, x, printed_digits: int, f0=None, **opts):
    """sd.gradient, given the noise of outputs printed with ``printed_digits`` significant
    digits when simdiff takes ``noise=``; (g, info, whether info.error can be held to it)."""
    import inspect

    honest = "noise" in inspect.signature(sd.jacobian).parameters
    if honest:
        f0 = np.abs(np.atleast_1d(sim(np.asarray(x, dtype=float)) if f0 is None else f0))
        opts["noise"] = 0.5 * 10.0 ** (1 - printed_digits) * f0
    g, info = sd.gradient(sim, x, full_output=True, **opts)
    return g, info, honest


def no_leaks(runs: Path) -> None:
    assert not runs.exists() or list(runs.iterdir()) == [], "work dirs left behind"


# -- ngspice -------------------------------------------------------------------------------------

DIVIDER = """divider
V1 1 0 DC 5
R1 1 2 {R1}
R2 2 0 {R2}
.control
set numdgt=14
op
print v(2)
.endc
.end
"""


@need("ngspice", "ngspice")
def test_ngspice_divider_gradient_matches_the_closed_form(tmp_path):
    runs = tmp_path / "runs"
    sim = sd.load("subprocess", command=["ngspice", "-b", "deck.cir"], inputs=["R1", "R2"],
                  outputs=["v2"], files={"deck.cir": DIVIDER}, ok_returncodes=[0, 1],
                  parse={"regex": r"^v\(2\) = (\S+)"}, workdir=str(runs), timeout=30)
    x = np.array([1000.0, 2200.0])
    g, info, honest = gradient(sim, x, 15, n_jobs=2)
    R1, R2 = x
    truth = np.array([-5 * R2 / (R1 + R2) ** 2, 5 * R1 / (R1 + R2) ** 2])
    err = np.abs(g - truth)
    assert np.all(err <= 1e-6 * np.abs(truth)), err / np.abs(truth)
    assert not honest or np.all(info.error >= err)
    no_leaks(runs)
    # without ok_returncodes, ngspice's exit code 1 after a .control block is a failure
    strict = sd.load("subprocess", command=["ngspice", "-b", "deck.cir"], inputs=["R1", "R2"],
                     files={"deck.cir": DIVIDER}, parse={"regex": r"^v\(2\) = (\S+)"},
                     workdir=str(runs), keep="never")
    with pytest.raises(sd.SimulationError, match="exited with code 1") as e:
        strict(x)
    assert e.value.returncode == 1


DIODE = """diode behind a resistor
V1 1 0 DC 5
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


def diode_slope(v: float, R: float, V: float = 5.0, Is: float = 1e-14, gmin: float = 1e-12) -> float:
    k, q, T = 1.38064852e-23, 1.6021766208e-19, 300.15
    Vt = k * T / q
    Id = (V - v) / R - gmin * v
    return -((V - v) / R**2) / (1 / R + (Id + Is) / Vt + gmin)


@need("ngspice", "ngspice")
def test_ngspice_diode_deck_printed_with_7_digits_differentiates_at_what_it_read(tmp_path):
    runs = tmp_path / "runs"
    sim = sd.load("subprocess", command=["ngspice", "-b", "deck.cir"], inputs=["R"], outputs=["v2"],
                  files={"deck.cir": DIODE}, ok_returncodes=[0, 1],
                  parse={"regex": r"^v\(2\) = (\S+)"}, workdir=str(runs), timeout=30)
    R = 1234.56789  # written as 1.234568e+03: the derivative is taken there
    Rq = float(sim.quantize(np.array([R]))[0])
    assert Rq == 1234.568
    v = float(sim(np.array([R]))[0])
    truth = diode_slope(v, Rq)
    for method, tol in (("central", 1e-4), ("five-point", 1e-7)):
        g, info, honest = gradient(sim, [R], 15, method=method, n_jobs=2)
        err = abs(g[0] - truth)
        assert err <= tol * abs(truth), (method, err / abs(truth))
        assert not honest or info.error[0] >= err, (method, info.error, err)
    no_leaks(runs)


# -- CalculiX ------------------------------------------------------------------------------------


def cantilever_deck(n_el: int, L: float, b: float, h: float, e_field: str, p_field: str) -> str:
    nodes = "\n".join(f"{i + 1}, {L * i / (2 * n_el)!r}, 0, 0" for i in range(2 * n_el + 1))
    els = "\n".join(f"{e + 1}, {2 * e + 1}, {2 * e + 2}, {2 * e + 3}" for e in range(n_el))
    tip = 2 * n_el + 1
    return f"""*HEADING
cantilever, B32R beams
*NODE, NSET=NALL
{nodes}
*ELEMENT, TYPE=B32R, ELSET=EALL
{els}
*NSET, NSET=TIP
{tip}
*MATERIAL, NAME=STEEL
*ELASTIC
{e_field}, 0.3
*BEAM SECTION, ELSET=EALL, MATERIAL=STEEL, SECTION=RECT
{b!r}, {h!r}
0.d0, 0.d0, 1.d0
*BOUNDARY
1, 1, 6
*STEP
*STATIC
*CLOAD
{tip}, 2, {p_field}
*NODE PRINT, NSET=TIP
U
*END STEP
"""


TIP_UY = {"file": "beam.dat", "regex": r"^\s+\d+\s+\S+\s+(\S+)"}


@need("ccx", "calculix-ccx")
@pytest.mark.parametrize("units", ["mm", "SI"])
def test_ccx_cantilever_tip_deflection_derivatives(tmp_path, units):
    runs = tmp_path / "runs"
    if units == "mm":  # N, mm, MPa
        L, b, h, x = 1000.0, 20.0, 40.0, np.array([210000.0, 100.0])
        deck = cantilever_deck(10, L, b, h, "{E:.6e}", "{-P}")
        scales = None
    else:  # N, m, Pa: E = 2.1e11 written with 8 digits
        L, b, h, x = 1.0, 0.02, 0.04, np.array([2.1e11, 100.0])
        deck = cantilever_deck(10, L, b, h, "{E:.7e}", "{-P:.8g}")
        scales = [1e11, 100.0]
    sim = sd.load("subprocess", command=["ccx", "beam"], inputs=["E", "P"], outputs=["uy"],
                  files={"beam.inp": deck}, parse=TIP_UY, workdir=str(runs), timeout=30,
                  scales=scales)
    d = float(sim(x)[0])
    I = b * h**3 / 12
    beam = -x[1] * L**3 / (3 * x[0] * I)
    assert abs(d - beam) <= 0.02 * abs(beam), (d, beam)
    g, info, honest = gradient(sim, x, 7, method="five-point", rel_step=0.02, n_jobs=2)
    xq = sim.quantize(x)
    truth = np.array([-d / xq[0], d / xq[1]])
    err = np.abs(g - truth)
    assert np.all(err <= 1e-4 * np.abs(truth)), err / np.abs(truth)
    assert not honest or np.all(info.error >= err)
    no_leaks(runs)


@need("ccx", "calculix-ccx")
def test_ccx_error_on_stdout_reaches_the_user(tmp_path):
    deck = cantilever_deck(2, 1000.0, 20.0, 40.0, "{E}", "-100.").replace(
        "MATERIAL=STEEL, SECTION", "MATERIAL=NOPE, SECTION")
    sim = sd.load("subprocess", command=["ccx", "beam"], inputs=["E"], files={"beam.inp": deck},
                  parse=TIP_UY, workdir=str(tmp_path / "runs"), timeout=30)
    with pytest.raises(sd.SimulationError) as err:
        sd.gradient(sim, [210000.0])
    e = err.value
    assert e.returncode == 201 and "exited with code 201" in str(e)
    assert "nonexistent material" in str(e) and "nonexistent material" in e.stdout_tail
    assert not e.stderr_tail
    kept = Path(e.workdir)
    assert (kept / "beam.inp").is_file() and "nonexistent material" in (
        kept / "simdiff-stdout.txt").read_text()
    assert e.point is not None and e.index is not None


# -- LAMMPS --------------------------------------------------------------------------------------

DIMER = """units lj
atom_style atomic
boundary f f f
region box block -10 10 -10 10 -10 10
create_box 1 box
create_atoms 1 single 0 0 0
create_atoms 1 single {r} 0 0
mass 1 1.0
pair_style lj/cut 5.0
pair_coeff 1 1 1.0 1.0
thermo_style custom step pe
thermo_modify norm no
run 0
print "ENERGY $(pe:%.17g)"
"""


@need("lmp", "lammps")
def test_lammps_dimer_energy_derivative_matches_lennard_jones(tmp_path):
    runs = tmp_path / "runs"
    sim = sd.load("subprocess", command=["lmp", "-in", "in.dimer", "-log", "none"], inputs=["r"],
                  outputs=["pe"], files={"in.dimer": DIMER}, parse={"regex": r"^ENERGY (\S+)"},
                  env={"OMP_NUM_THREADS": "1"}, workdir=str(runs), timeout=60)
    r = 1.2
    e = float(sim(np.array([r]))[0])
    assert e == pytest.approx(4 * (r**-12 - r**-6), rel=1e-13)
    truth = 4 * (-12 * r**-13 + 6 * r**-7)
    # five-point: its embedded central estimate measures the truncation (the steep LJ wall,
    # |f'''| about 300 at r = 1.2, is steeper than the two-point model assumes)
    g, info, honest = gradient(sim, [r], 17, f0=e, method="five-point", n_jobs=2)
    err = abs(g[0] - truth)
    assert err <= 1e-8 * abs(truth)
    assert not honest or info.error[0] >= err
    no_leaks(runs)


@need("lmp", "lammps")
def test_lammps_error_on_stdout_reaches_the_user(tmp_path):
    sim = sd.load("subprocess", command=["lmp", "-in", "in.bad", "-log", "none"], inputs=["r"],
                  files={"in.bad": "units lj\nfrobnicate {r}\n"}, workdir=str(tmp_path), keep="never")
    with pytest.raises(sd.SimulationError) as err:
        sim(np.array([1.0]))
    assert "ERROR: Unknown command: frobnicate 1.0" in str(err.value)
    assert err.value.returncode == 1 and err.value.workdir is None
    assert list(tmp_path.iterdir()) == []
