"""fastbp in one page: backprop one example in the notation of the chain rule,
then train a network on the 8x8 digits shipped with the package.

Run:  python examples/quickstart.py
"""
import time

import numpy as np

import fastbp
from fastbp.datasets import load_digits, train_test_split

# -- backprop of one example, read in the notation ---------------------------
net = fastbp.Network([64, 16, 10], activation="sigmoid", cost="quadratic", seed=0)
X, y = load_digits()
x, label = X[:1], y[:1]                      # one example, as a (1, 64) batch

grads = net.backprop(x, label)               # gradients of C (the mean of C0)
L, j, k = 2, 3, 5
print(f"C0 = {grads.cost:.4f}")
print(f"dC/dw^{L}_{j}{k} from backprop      = {grads.weights[L - 1][j, k]:+.6f}")

why = fastbp.explain(net, x, label, layer=L, j=j, k=k)
print(f"  dz^{L}_{j}/dw^{L}_{j}{k} = a^{L - 1}_{k}   = {why.dz_dw[0]:+.6f}")
print(f"  da^{L}_{j}/dz^{L}_{j} = sigma'(z)  = {why.da_dz[0]:+.6f}")
print(f"  dC0/da^{L}_{j} = 2(a - y)      = {why.dc_da[0]:+.6f}")
print(f"  product of the three factors = {why.dz_dw[0] * why.da_dz[0] * why.dc_da[0]:+.6f}")
print(f"largest relative difference to finite differences: {fastbp.gradcheck(net, x, label):.2e}")

# -- training on the shipped digits --------------------------------------------
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
net = fastbp.Network([64, 32, 10], activation="relu", output="softmax", cost="log_loss", seed=0)
trainer = fastbp.Trainer(net, fastbp.Adam(lr=1e-2), batch_size=32, seed=0)
start = time.perf_counter()
history = trainer.fit(X_train, y_train, epochs=30, validation_data=(X_test, y_test), progress=False)
elapsed = time.perf_counter() - start
print(f"\ntrained 64-32-10 on {len(X_train)} digits for {len(history)} epochs in {elapsed:.2f} s "
      f"({len(history) * len(X_train) / elapsed:,.0f} examples/s)")
print(f"final training loss {history.loss[-1]:.4f}, test accuracy {net.score(X_test, y_test):.3f}")
assert net.score(X_test, y_test) > 0.9
