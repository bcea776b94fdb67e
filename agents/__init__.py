"""SIP user agents on pjsua2: callers and contact-center agents."""
