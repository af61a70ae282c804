"""After-sales follow-ups: due by rule after delivery or shipping, sent once."""
