"""Feature extraction: the audio front end, the frame sampler, the VGGish/YAMNet and
VGG16/EfficientNetB0 encoders and the extraction runner writing the released TFRecord layout.

Built by the feature-extraction issue.
"""
