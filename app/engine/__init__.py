"""Tree evaluation only: LightGBM text models, the native walker, the Booster fallback."""
