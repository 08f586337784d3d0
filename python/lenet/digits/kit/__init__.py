"""The kit that makes and judges the reader's model: synthetic pages (synth), pen, scanner and
camera variety (variety), the font catalogue (fonts), the training crops (training_data) and the
held-out page scores (evaluate). It builds on the runtime reader (lenet.digits) and is never
imported by it: reading digits needs none of this, nor MNIST or the fonts."""
