"""Selfie checks and verification (DeepFace, Dlib model, fully offline)."""
