"""Buyers recognised across channels, and their loyalty tiers."""
