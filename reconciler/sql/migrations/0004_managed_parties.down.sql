DROP TABLE IF EXISTS reconciler_managed_parties;
