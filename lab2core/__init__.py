"""Pure numerical core of lab2: tensors and frames in; tensors, numbers and Figures out."""
