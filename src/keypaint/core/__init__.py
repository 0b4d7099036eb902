"""The typed core: parameters, samplers, seeds, devices and the Painter that runs them."""
