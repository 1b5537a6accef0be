#!/usr/bin/env python3
"""Exercise 2: the column mass of uniform causal attention, and R_gs at initialisation.

At init every logit q.k/sqrt(D) is ~0 (weights N(0, 0.02^2)), so query t spreads its attention
evenly over the t+1 keys it sees: a[t,j] = 1/(t+1). Predict the sink column's mass
M_0 = sum_t a[t,0] for T = 64 and compare with the step-0 probe. The check: your number is
within 2% of the measured M0 (mean over layers). Solution: the harmonic number H_T.
Solution form also checks S_0 = sum_t a[t,0]^2 against sum 1/t^2 (1%) and that R_gs at init
lies in the window [2, 8] around the two models of the upstream gradients worked out below
(independent dy_t, or one shared direction).
"""
import math

from common import Exercise, answer_number, fmt, harmonic, mean

T = 64
ex = Exercise(2, "predict M0 of uniform causal attention at init (T = %d)" % T,
              answer_help="your predicted M0 for T = %d" % T)
p = ex.gradsink("init", "-b", "4", "-n", "1", "-P", "1")[0]  # the step-0 probe
assert p["step"] == 0
M0, S0 = mean(p["M0"]), mean(p["S0"])
H_T = harmonic(T)
print("measured at step 0: M0 per layer %s (mean %.4f), S0 per layer %s" % (fmt(p["M0"], "%.4f"), M0, fmt(p["S0"], "%.4f")))
S_T = sum(1.0 / t ** 2 for t in range(1, T + 1))


def judge(guess):
    """(ok, relative error) of a predicted M0 against the measurement: within 2%"""
    rel = abs(guess - M0) / M0
    return rel <= 0.02, rel


def solution():
    print("uniform attention: M0 = sum_t 1/(t+1) = H_T = %.4f (~ ln T + 0.5772 = %.4f); S0 = sum_t 1/(t+1)^2 = %.4f"
          % (H_T, math.log(T) + 0.5772, S_T))


if ex.answer is not None:
    guess = answer_number(ex.answer)
    if guess is None:
        ex.fail_now("ANSWER=%r is not a number" % ex.answer)
    ok, rel = judge(guess)
    if ex.check(ok, "your M0 = %.4f is within 2%% of the measured %.4f (off by %.2f%%)" % (guess, M0, 100 * rel)):
        solution()
else:
    solution()
    ok, rel = judge(H_T)
    ex.check(ok, "the solution's M0 = H_T = %.4f is within 2%% of the measured %.4f (off by %.2f%%)" % (H_T, M0, 100 * rel))
    ex.check(abs(S0 - S_T) / S_T <= 0.01, "S0 = %.4f matches sum 1/t^2 = %.4f within 1%%" % (S0, S_T))
    # R_gs at init: the gradient at x~_t is mostly the value path, dv_s = sum_{t>=s} dy_t/(t+1).
    # Independent upstream gradients: |dv_s| ~ sqrt(S_s); one shared direction: |dv_s| ~ M_s.
    S = lambda s: sum(1.0 / (t + 1) ** 2 for t in range(s, T))
    M = lambda s: sum(1.0 / (t + 1) for t in range(s, T))
    n = min(32, T)
    r_indep = math.sqrt(S(0)) / mean(math.sqrt(S(s)) for s in range(1, n))
    r_shared = M(0) / mean(M(s) for s in range(1, n))
    print("R_gs if the upstream gradients dy_t were independent: %.2f; if they shared one direction: %.2f" % (r_indep, r_shared))
    print("measured R_gs per layer %s, median %.2f; token 0's value over key gradient |dv0|/|dk0| = %.0f"
          % (fmt(p["R_gs"], "%.2f"), p["R_gs_median"], p["dv_dk_0"]))
    ex.check(2 <= p["R_gs_median"] <= 8, "R_gs median at init %.2f lies in [2, 8]: a gradient sink before any attention sink"
             % p["R_gs_median"])
if ex.args.selftest:
    ok, rel = judge(math.log(T))
    ex.check(not ok, "selftest: the check rejects ln T = %.4f (off by %.1f%%)" % (math.log(T), 100 * rel))
ex.finish()
