"""The locations plugin has no background work: bookings are assigned by event handlers."""
