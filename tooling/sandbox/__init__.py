"""Local stand-ins for provider APIs that cannot be reached from a laptop or CI.

They speak the providers' wire formats, so the official client libraries talk to them
unchanged; ``switchboard dev`` runs them so a trial needs no accounts, and the tests use them
as the far end of every outbound call.
"""
