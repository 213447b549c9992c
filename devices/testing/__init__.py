"""Test doubles that speak the real protocols (the emulated adb server and phone)."""
