"""Converters from public face-dataset layouts to keras-facemt schema shards.

``facemt convert <layout>`` (``tfrecords_tools.registry`` lists the layouts),
``facemt inspect DIR`` and ``facemt vote-attributes``; ``common.run_conversion`` is
the shared conversion run.
"""
