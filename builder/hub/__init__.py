"""Hub: what a publish sends and how it reaches the Hugging Face Hub.

``client`` (the one door to the Hub), ``bundles`` (what a publish sends, and its gate),
``publish`` (plan, upload, one commit, one tag).
"""
