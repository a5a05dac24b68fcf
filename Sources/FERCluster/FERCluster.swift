// placeholder: FERCluster
