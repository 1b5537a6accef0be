#!/usr/bin/env python3
"""Exercise 3: the query path of token 0 gets no gradient, dq_0 = 0.

Row 0 of a causal attention matrix has a single entry: query 0 sees only key 0, so
a[0,0] = softmax of one logit = 1 whatever q_0 is. Its output y_0 = v_0 does not depend on q_0,
hence dq_0 = 0 exactly, in every layer and head, at every step. Every later query t >= 1 sees
t+1 keys and does get a gradient. The check: in every probe of a short training run,
grad_q[l][0] == 0 exactly and grad_q[l][t] > 0 for every t >= 1, in every layer.
"""
from common import Exercise, fmt

ex = Exercise(3, "dq_0 = 0 exactly, from the causal mask")
probes = ex.gradsink("run", "-b", "4", "-n", "20", "-P", "10")
for p in probes:
    print("step %3d: grad_q_mean[0..4] = %s   grad_k_mean[0..4] = %s   grad_v_mean[0..4] = %s" %
          (p["step"], fmt(p["grad_q_mean"][:5], "%.2e"), fmt(p["grad_k_mean"][:5], "%.2e"), fmt(p["grad_v_mean"][:5], "%.2e")))
zero = all(p["grad_q"][l][0] == 0 for p in probes for l in range(p["L"]))
later = [p["grad_q"][l][t] for p in probes for l in range(p["L"]) for t in range(1, p["positions"])]
ex.check(len(probes) == 3 and zero, "grad_q at t = 0 is exactly 0 in every layer of all %d probes (steps %s)" %
         (len(probes), ", ".join(str(p["step"]) for p in probes)))
ex.check(all(g is not None and g > 0 for g in later), "grad_q at t >= 1 is > 0 everywhere (smallest %.2e)" % min(later))
if ex.args.selftest:
    # the same rule applied to the keys would be wrong: k_0 is read by every query
    k0 = [p["grad_k"][l][0] for p in probes for l in range(p["L"])]
    ex.check(all(g > 0 for g in k0), "selftest: grad_k at t = 0 is not 0 (the check tells a zero from a small number)")
ex.finish()
