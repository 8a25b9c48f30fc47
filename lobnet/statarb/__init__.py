"""Statistical arbitrage on daily bars (``lobnet-statarb``): pair screening with multiple-testing control and a
rolling walk-forward (:mod:`.pairs`), PCA residual mean reversion (:mod:`.factors`), momentum across asset
classes (:mod:`.momentum`) and the decay of a strategy's returns (:mod:`.decay`)."""
