"""omnidiffusion.timeseries: CSDI probabilistic imputation and forecasting (Tashiro et al. 2021).

Submodules: data (CSV/DataFrame, windows, normalisation, bundled demo data), masks (training and evaluation
masks), models (the CSDI network), task (conditioning, loss, sampling through core), metrics (CRPS, CRPS-sum,
MAE, RMSE, coverage), baselines, estimator (gluonts CSDIEstimator / CSDIPredictor), selection (validation
inside `train`), panel (the evaluation tables), datasets (PhysioNet 2012 and Beijing PM2.5 readers with CSDI's
protocols), settings (the config tree, TimeseriesConfig), training
(`train`), evaluation, pipeline (Imputer, load_model, distil_imputer: the consistency-distilled few-step
imputer), cli.
"""
