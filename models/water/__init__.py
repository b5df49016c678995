"""Water quality: classification by the standards, relapse prediction, patrols."""
