"""The control plane: onboarding a business's number (the Graph API calls that start its webhooks,
each made once, inside the platform's 24-hour window), recorded step by step so that it resumes."""
