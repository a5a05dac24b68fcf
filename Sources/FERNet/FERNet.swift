// placeholder: FERNet
