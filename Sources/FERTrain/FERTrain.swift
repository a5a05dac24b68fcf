// placeholder: FERTrain
