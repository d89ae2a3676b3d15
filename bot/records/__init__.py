"""Records services: pensioners, cases (handoff store), attempts, proxy links. Above the foundation only."""
